# The Chalice app behind API Gateway. tools/package.py writes the app's own OpenAPI
# (Chalice's generator, every route with its Lambda proxy integration and CORS preflight)
# to build/lambda/openapi.json; here the api function's ARN and the site's origin are put
# in and one apply
# deploys it. Chalice routes by API Gateway's resource path, so a greedy {proxy+}
# resource would not reach its routes: the real paths are needed.
locals {
  openapi = replace(
    replace(
      file("${path.module}/${var.build_dir}/${var.openapi_file}"),
      "@@API_FUNCTION_INVOKE_ARN@@",
      aws_lambda_function.function["api"].invoke_arn,
    ),
    "@@CORS_ORIGIN@@", # the CORS preflights answer with the site's origin
    local.site_url,
  )
}

resource "aws_api_gateway_rest_api" "api" {
  name = var.prefix
  body = local.openapi

  endpoint_configuration {
    types           = ["REGIONAL"] # CloudFront's edge would only add a hop: the custom domain is regional
    ip_address_type = "dualstack"  # IPv6 too, like the site
  }

  # A replacement API exists before the old one goes, so the domain mapping never dangles.
  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_deployment" "api" {
  rest_api_id = aws_api_gateway_rest_api.api.id

  # A new deployment whenever the routes change.
  triggers = {
    redeployment = sha1(local.openapi)
  }

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_api_gateway_stage" "api" {
  #checkov:skip=CKV_AWS_73:No X-Ray SDK in the code (see the functions); API Gateway's own metrics suffice.
  #checkov:skip=CKV_AWS_76:Access logging needs the account-wide API Gateway CloudWatch role (aws_api_gateway_account), which other stacks in the account may own; the api function logs every request itself.
  #checkov:skip=CKV_AWS_120:Caching is wrong for this API: check results must be fresh and every other route changes state.
  #checkov:skip=CKV2_AWS_29:No WAF: its fixed monthly cost exceeds the whole service's; stage throttling and the app's per-client rate limits bound abuse.
  #checkov:skip=CKV2_AWS_51:Client certificates authenticate API Gateway to a backend, and the backend here is Lambda.
  #checkov:skip=CKV2_AWS_4:Execution logging is off for the same reason as access logging (account-wide role); the function's logs are the record.
  deployment_id = aws_api_gateway_deployment.api.id
  rest_api_id   = aws_api_gateway_rest_api.api.id
  stage_name    = "api"
}

resource "aws_api_gateway_method_settings" "api" {
  #checkov:skip=CKV_AWS_225:Caching is wrong for this API: check results must be fresh and every other route changes state.
  rest_api_id = aws_api_gateway_rest_api.api.id
  stage_name  = aws_api_gateway_stage.api.stage_name
  method_path = "*/*"

  settings {
    throttling_rate_limit  = var.api_throttle_rate
    throttling_burst_limit = var.api_throttle_burst
    metrics_enabled        = true
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowApiGateway"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["api"].function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_api_gateway_rest_api.api.execution_arn}/*"
}

# https://api.<domain>/ is the stage: the frontend's config.js points there.
resource "aws_acm_certificate" "api" {
  domain_name       = local.api_domain
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_acm_certificate_validation" "api" {
  certificate_arn         = aws_acm_certificate.api.arn
  validation_record_fqdns = [for record in aws_route53_record.api_certificate_validation : record.fqdn]
}

# ACM's DNS challenge, answered in our own zone: no validation email, no copying by hand.
resource "aws_route53_record" "api_certificate_validation" {
  for_each = {
    for option in aws_acm_certificate.api.domain_validation_options : option.domain_name => option
  }

  zone_id         = local.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_api_gateway_domain_name" "api" {
  domain_name              = local.api_domain
  regional_certificate_arn = aws_acm_certificate_validation.api.certificate_arn
  security_policy          = "TLS_1_2"

  endpoint_configuration {
    types           = ["REGIONAL"]
    ip_address_type = "dualstack" # api.<domain> has an AAAA record too
  }
}

resource "aws_api_gateway_base_path_mapping" "api" {
  api_id      = aws_api_gateway_rest_api.api.id
  stage_name  = aws_api_gateway_stage.api.stage_name
  domain_name = aws_api_gateway_domain_name.api.domain_name
}
