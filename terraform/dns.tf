# The domain's zone: created here unless var.hosted_zone_id names an existing one (as
# Route53 Domains makes when the domain is bought there). Either way the registrar must
# delegate to its name servers (output name_servers) - the one DNS step outside Terraform.
resource "aws_route53_zone" "main" {
  #checkov:skip=CKV2_AWS_38:DNSSEC signing needs a customer-managed asymmetric KMS key in us-east-1 and a DS record at the registrar, a manual step this stack avoids; enable it once the domain is delegated if wanted.
  #checkov:skip=CKV2_AWS_39:Query logging would need a us-east-1 log group and resource policy for the whole zone; the records are static and public.
  count = var.hosted_zone_id == "" ? 1 : 0

  name    = var.domain_name
  comment = "sslnotify ${var.prefix}"
}

data "aws_route53_zone" "existing" {
  count = var.hosted_zone_id == "" ? 0 : 1

  zone_id = var.hosted_zone_id
}

locals {
  zone_id      = var.hosted_zone_id == "" ? aws_route53_zone.main[0].zone_id : var.hosted_zone_id
  name_servers = var.hosted_zone_id == "" ? aws_route53_zone.main[0].name_servers : data.aws_route53_zone.existing[0].name_servers
}

# The site at the apex, over IPv4 and IPv6.
resource "aws_route53_record" "site" {
  for_each = toset(["A", "AAAA"])

  zone_id = local.zone_id
  name    = var.domain_name
  type    = each.key

  alias {
    name                   = aws_cloudfront_distribution.site.domain_name
    zone_id                = aws_cloudfront_distribution.site.hosted_zone_id
    evaluate_target_health = false
  }
}

# The API at api.<domain> (a regional API Gateway custom domain).
resource "aws_route53_record" "api" {
  for_each = toset(["A", "AAAA"])

  zone_id = local.zone_id
  name    = local.api_domain
  type    = each.key

  alias {
    name                   = aws_api_gateway_domain_name.api.regional_domain_name
    zone_id                = aws_api_gateway_domain_name.api.regional_zone_id
    evaluate_target_health = false
  }
}
