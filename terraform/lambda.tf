# One function per entry of resources.json: the API (Chalice app) and every handler in
# lambdas/. Each is a zip built by tools/package.py (make package): chalicelib, the
# handler and the run-time dependencies, reproducible byte for byte.
locals {
  # The same environment for every function (chalicelib/config.py reads these), and the
  # deployment secret only for those whose code uses it (permissions.json "secret").
  function_environment = {
    SSLNOTIFY_PREFIX                = var.prefix
    SSLNOTIFY_SITE_URL              = local.site_url
    SSLNOTIFY_API_URL               = local.api_url
    SSLNOTIFY_CORS_ORIGIN           = local.site_url
    SSLNOTIFY_SENDER                = local.sender
    SSLNOTIFY_OPERATOR_EMAIL        = var.operator_email
    SSLNOTIFY_FEEDBACK_EMAIL        = local.feedback_email
    SSLNOTIFY_SES_CONFIGURATION_SET = aws_ses_configuration_set.main.name
    SSLNOTIFY_BACKUP_BUCKET         = aws_s3_bucket.bucket["backups"].id
    SSLNOTIFY_INBOUND_BUCKET        = aws_s3_bucket.bucket["inbound"].id
    # Only with IPv6 egress (var.check_ipv6); without it an IPv6 address cannot be reached.
    SSLNOTIFY_CHECK_IPV6 = var.check_ipv6 ? "1" : "0"
    # Pace to the account's SES quota, read by the mailer with GetSendQuota.
    SSLNOTIFY_SES_RATE = "quota"
  }
}

locals {
  # Functions invoked asynchronously: those permissions.json gives the dead-letter queue to.
  async_functions = {
    for key in keys(local.functions) : key => !contains(flatten([
      for statement in local.permissions.runtime : try(statement.except, [])
      if contains(statement.resources, "queue:dead-letter")
    ]), key)
  }
}

# Created before the functions, so that Lambda never creates them without a retention.
resource "aws_cloudwatch_log_group" "function" {
  #checkov:skip=CKV_AWS_158:Logs are encrypted by CloudWatch Logs with its own key; they hold only pseudonyms (keyed hashes), never an address, so a customer-managed key adds cost without protecting anything more.
  #checkov:skip=CKV_AWS_338:Retention is deliberately short (var.log_retention_days, 30 days): the reporter reads only the last 25 hours, and keeping operational logs a year serves no one.
  for_each = local.functions

  name              = "/aws/lambda/${local.function_names[each.key]}"
  retention_in_days = var.log_retention_days
}

# Asynchronous invocations that still fail after Lambda's two retries (a checker batch,
# a mail, a scheduled job, a bounce event) land here instead of vanishing.
resource "aws_sqs_queue" "dead_letter" {
  name                      = "${var.prefix}-dead-letter"
  message_retention_seconds = 1209600 # 14 days, the maximum: time to notice and replay
  sqs_managed_sse_enabled   = true
}

resource "aws_lambda_function" "function" {
  #checkov:skip=CKV_AWS_50:No X-Ray SDK in the code; structured JSON logs and the daily report cover tracing needs, and tracing would add IAM actions the code does not use.
  #checkov:skip=CKV_AWS_115:Reserved concurrency is not set: new accounts have a concurrency quota of 10 that cannot be reserved from, and the API is throttled at API Gateway instead.
  #checkov:skip=CKV_AWS_117:Not in a VPC: the checker must reach any host on the Internet, and a NAT gateway would cost more than the whole service; no VPC resource is accessed.
  #checkov:skip=CKV_AWS_173:Environment variables are encrypted at rest by Lambda with the AWS-managed key; a customer-managed key would only add cost (the same value is in the Terraform state either way).
  #checkov:skip=CKV_AWS_272:Code signing needs AWS Signer profiles and a signing step in CI; artefacts are built reproducibly from the repository instead.
  for_each = local.functions

  function_name = local.function_names[each.key]
  description   = "sslnotify ${each.key}"
  role          = aws_iam_role.function[each.key].arn
  handler       = each.value.handler
  runtime       = "python3.13"
  architectures = ["x86_64"] # the zips hold manylinux x86_64 wheels
  timeout       = each.value.timeout
  memory_size   = each.value.memory

  filename         = "${path.module}/${var.build_dir}/${each.key}.zip"
  source_code_hash = filebase64sha256("${path.module}/${var.build_dir}/${each.key}.zip")

  environment {
    variables = merge(
      local.function_environment,
      contains(local.permissions.secret.functions, each.key) ? {
        SSLNOTIFY_SECRET = aws_secretsmanager_secret_version.deployment.secret_string
      } : {},
    )
  }

  # Every function invoked asynchronously (all but the API) has the dead-letter queue.
  dynamic "dead_letter_config" {
    for_each = local.async_functions[each.key] ? [1] : []
    content {
      target_arn = aws_sqs_queue.dead_letter.arn
    }
  }

  depends_on = [aws_cloudwatch_log_group.function, aws_iam_role_policy.function]
}
