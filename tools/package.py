"""Build the deployment artefacts: one reproducible zip per function, and the API's OpenAPI.

    python tools/package.py [--out build/lambda] [--no-deps]

Each zip holds chalicelib (with resources.json), the function's handler module (app.py and
Chalice's small runtime for the API) and the run-time dependencies of requirements.txt,
installed as manylinux x86_64 wheels for Python 3.13 (the Lambda runtime). boto3 and its
own dependencies are left out: the runtime provides them. Every entry has a fixed
timestamp and mode and the entries are sorted, so building twice gives identical bytes
(and Terraform's source_code_hash changes only when the code does).

openapi.json is Chalice's own description of the app's routes (with their Lambda proxy
integrations and CORS preflights) in OpenAPI 3, the form API Gateway imports; Terraform
puts the api function's ARN in place of @@API_FUNCTION_INVOKE_ARN@@ and the site's origin
in place of @@CORS_ORIGIN@@. openapi-emulated.json is the same for moto (see for_emulator).

--no-deps skips the third-party dependencies (the tests use it: the emulator never runs
the code, and the in-process invocations use the project's virtualenv).
"""

from __future__ import annotations

import argparse
import ast
import copy
import hashlib
import json
import os
import shutil
import subprocess
import sys
import zipfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESOURCES = ROOT / "chalicelib" / "resources.json"
REQUIREMENTS = ROOT / "requirements.txt"
FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest a zip can record
INVOKE_ARN_PLACEHOLDER = "@@API_FUNCTION_INVOKE_ARN@@"
CORS_ORIGIN_PLACEHOLDER = "@@CORS_ORIGIN@@"
# In the Lambda Python runtime already (boto3 and what it pulls in).
RUNTIME_PROVIDED = {
    "boto3",
    "botocore",
    "s3transfer",
    "jmespath",
    "urllib3",
    "python-dateutil",
    "six",
}
# The python3.13 runtime is Amazon Linux 2023 (glibc 2.34): any manylinux wheel up to that.
PLATFORM = [
    *("--platform", "manylinux2014_x86_64"),
    *("--platform", "manylinux_2_28_x86_64"),
    *("--platform", "manylinux_2_34_x86_64"),
    *("--implementation", "cp"),
]
PYTHON_VERSION = "3.13"
SKIPPED_PARTS = {"__pycache__"}
SKIPPED_SUFFIXES = {".pyc", ".pyo"}


def functions() -> dict[str, dict[str, Any]]:
    """Return the functions of resources.json."""
    return json.loads(RESOURCES.read_text())["functions"]


def first_party_imports(module: str) -> set[str]:
    """Return the modules of lambdas/ (and app) that a handler module imports, itself included."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = ROOT / (name.replace(".", "/") + ".py")
        if name in seen or not path.exists():
            continue
        seen.add(name)
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                todo.extend([node.module, *(f"{node.module}.{a.name}" for a in node.names)])
            elif isinstance(node, ast.Import):
                todo.extend(alias.name for alias in node.names)
    return {name for name in seen if name.split(".")[0] in {"lambdas", "app"}}


def tree(directory: Path, prefix: str) -> Iterator[tuple[Path, str]]:
    """Yield (file, name in the zip) for every file under a directory, caches skipped."""
    for path in sorted(directory.rglob("*")):
        relative = path.relative_to(directory)
        if path.is_dir() or SKIPPED_PARTS & set(relative.parts):
            continue
        if path.suffix in SKIPPED_SUFFIXES:
            continue
        yield path, f"{prefix}{relative.as_posix()}" if prefix else relative.as_posix()


def function_files(key: str, spec: dict[str, Any]) -> Iterator[tuple[Path, str]]:
    """Yield the project files of one function's zip."""
    yield from tree(ROOT / "chalicelib", "chalicelib/")
    module = spec["handler"].rpartition(".")[0]
    modules = first_party_imports(module)
    if any(name.startswith("lambdas") for name in modules):
        yield ROOT / "lambdas" / "__init__.py", "lambdas/__init__.py"
    for name in sorted(modules):
        yield ROOT / (name.replace(".", "/") + ".py"), name.replace(".", "/") + ".py"
    if key == "api" or "app" in modules:
        # Chalice's runtime is two files (what `chalice package` ships too), not the CLI.
        import chalice
        import chalice.app

        yield Path(chalice.__file__), "chalice/__init__.py"
        yield Path(chalice.app.__file__), "chalice/app.py"


def runtime_requirements() -> list[str]:
    """Return the lines of requirements.txt that the Lambda runtime does not provide."""
    lines = []
    for line in REQUIREMENTS.read_text().splitlines():
        requirement = line.split("#", 1)[0].strip()
        name = requirement.split("==")[0].split(">")[0].split("<")[0].split("[")[0].strip()
        if requirement and name.lower() not in RUNTIME_PROVIDED:
            lines.append(requirement)
    return lines


def install_dependencies(build: Path) -> Path:
    """Install the run-time wheels for Lambda once per requirements set; return the directory."""
    requirements = runtime_requirements()
    key = "\n".join([PYTHON_VERSION, *PLATFORM, *requirements])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    target = build / f"deps-{digest}"
    if (target / ".complete").exists():
        return target
    for stale in build.glob("deps-*"):  # from other requirements: never used again
        shutil.rmtree(stale, ignore_errors=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-compile",
            "--only-binary=:all:",
            *PLATFORM,
            "--python-version",
            PYTHON_VERSION,
            "--target",
            str(target),
            *requirements,
        ],
        check=True,
    )
    # Anything of boto3's that a dependency dragged in would shadow the runtime's copy.
    for name in RUNTIME_PROVIDED:
        for path in target.glob(f"{name.replace('-', '_')}*"):
            shutil.rmtree(path) if path.is_dir() else path.unlink()
    (target / ".complete").write_text("")
    return target


def dependency_files(deps: Path | None) -> Iterator[tuple[Path, str]]:
    """Yield the installed dependencies' files (pip's scripts directory left out)."""
    if deps is None:
        return
    for path, name in tree(deps, ""):
        if name.startswith("bin/") or name == ".complete":
            continue
        yield path, name


def write_zip(destination: Path, files: Iterable[tuple[Path, str]]) -> None:
    """Write a zip whose bytes depend only on the files' names and contents."""
    entries = {name: path for path, name in files}
    destination.parent.mkdir(parents=True, exist_ok=True)
    partial = destination.with_suffix(".zip.partial")
    with zipfile.ZipFile(partial, "w", zipfile.ZIP_DEFLATED, compresslevel=9) as archive:
        for name in sorted(entries):
            info = zipfile.ZipInfo(name, date_time=FIXED_TIME)
            info.external_attr = 0o100644 << 16  # a regular file, rw-r--r--
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix, whatever machine builds it
            archive.writestr(info, entries[name].read_bytes(), compresslevel=9)
    partial.replace(destination)


def openapi_document() -> dict[str, Any]:
    """Return the Chalice app's routes as an OpenAPI 3 document for API Gateway."""
    from chalice.deploy.swagger import SwaggerGenerator

    class Generator(SwaggerGenerator):
        def _uri(self, lambda_arn: str | None = None) -> str:
            return INVOKE_ARN_PLACEHOLDER

    # API Gateway answers CORS preflights itself (mock integrations), with the origin
    # written into the document: leave a placeholder that Terraform fills with the site's.
    os.environ["SSLNOTIFY_CORS_ORIGIN"] = CORS_ORIGIN_PLACEHOLDER
    sys.path.insert(0, str(ROOT))
    from chalicelib.config import reset_settings

    reset_settings()
    from app import app

    swagger = Generator(region="us-east-1", deployed_resources={}).generate_swagger(app)
    document = to_openapi3(swagger)
    document["x-amazon-apigateway-gateway-responses"] = gateway_responses()
    return document


def gateway_responses() -> dict[str, Any]:
    """Return API Gateway's own error answers, with the site's origin as CORS allows it.

    The stage throttle's 429, the 504 at the integration's 29 s and a 5xx when Lambda
    is throttled come from API Gateway, not the app: without these headers the browser
    hides their status (it sees 0) and the page cannot say "too many requests".
    Answered in the app's own error shape, {"Code", "Message"}.
    """
    headers = {
        "gatewayresponse.header.Access-Control-Allow-Origin": f"'{CORS_ORIGIN_PLACEHOLDER}'",
        "gatewayresponse.header.Vary": "'Origin'",
    }
    template = '{"Code": "$context.error.responseType", "Message": $context.error.messageString}'
    return {
        kind: {
            "responseParameters": dict(headers),
            "responseTemplates": {"application/json": template},
        }
        for kind in ("DEFAULT_4XX", "DEFAULT_5XX")
    }


def _ref(value: Any) -> Any:
    if isinstance(value, dict):
        return {
            key: (
                item.replace("#/definitions/", "#/components/schemas/")
                if key == "$ref"
                else _ref(item)
            )
            for key, item in value.items()
        }
    if isinstance(value, list):
        return [_ref(item) for item in value]
    return value


def to_openapi3(swagger: dict[str, Any]) -> dict[str, Any]:
    """Convert the Swagger 2.0 that Chalice writes to OpenAPI 3.0 (what this needs of it)."""
    swagger = copy.deepcopy(swagger)
    document: dict[str, Any] = {
        "openapi": "3.0.1",
        "info": {**swagger["info"], "description": "sslnotify API (generated by tools/package.py)"},
        "paths": {},
        "components": {"schemas": _ref(swagger.get("definitions", {}))},
    }
    for key, value in swagger.items():
        if key.startswith("x-"):
            document[key] = value
    for path, methods in sorted(swagger["paths"].items()):
        converted: dict[str, Any] = {}
        for method, operation in sorted(methods.items()):
            produces = operation.pop("produces", None) or ["application/json"]
            operation.pop("consumes", None)
            if "parameters" in operation:
                operation["parameters"] = [
                    {
                        **{k: v for k, v in parameter.items() if k != "type"},
                        "schema": {"type": parameter.get("type", "string")},
                    }
                    for parameter in operation["parameters"]
                ]
            for response in operation.get("responses", {}).values():
                if "schema" in response:
                    schema = response.pop("schema")
                    response["content"] = {kind: {"schema": schema} for kind in produces}
                for name, header in list(response.get("headers", {}).items()):
                    response["headers"][name] = {"schema": {"type": header.get("type", "string")}}
            converted[method] = _ref(operation)
        document["paths"][path] = converted
    return document


def build(out: Path, with_dependencies: bool = True) -> list[Path]:
    """Build every function's zip and openapi.json into out; return what was written."""
    out.mkdir(parents=True, exist_ok=True)
    deps = install_dependencies(out.parent) if with_dependencies else None
    written = []
    for key, spec in functions().items():
        destination = out / f"{key}.zip"
        write_zip(destination, [*function_files(key, spec), *dependency_files(deps)])
        written.append(destination)
    openapi = openapi_document()
    for name, content in (
        ("openapi.json", openapi),
        ("openapi-emulated.json", for_emulator(openapi)),
    ):
        document = out / name
        document.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
        written.append(document)
    return written


def for_emulator(document: dict[str, Any]) -> dict[str, Any]:
    """Return the document as moto can import it (tests only: terraform var.openapi_file).

    moto's import requires a uri and an httpMethod on every integration, which API Gateway
    does not want on the MOCK integrations of CORS preflights; this variant adds dummies.
    """
    document = copy.deepcopy(document)
    for methods in document["paths"].values():
        for operation in methods.values():
            integration = operation.get("x-amazon-apigateway-integration", {})
            if integration.get("type") == "mock":
                integration.setdefault("httpMethod", "OPTIONS")
                integration.setdefault("uri", "mock://preflight")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=ROOT / "build" / "lambda")
    parser.add_argument(
        "--no-deps", action="store_true", help="leave out third-party dependencies (tests)"
    )
    args = parser.parse_args(argv)
    for path in build(args.out.resolve(), with_dependencies=not args.no_deps):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        print(f"{path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}  {digest}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
