# The static site: a private bucket served by CloudFront over HTTPS only, at the apex.

# CloudFront's certificate must live in us-east-1.
resource "aws_acm_certificate" "site" {
  provider = aws.us_east_1

  domain_name       = var.domain_name
  validation_method = "DNS"

  lifecycle {
    create_before_destroy = true
  }
}

resource "aws_route53_record" "site_certificate_validation" {
  for_each = {
    for option in aws_acm_certificate.site.domain_validation_options : option.domain_name => option
  }

  zone_id         = local.zone_id
  name            = each.value.resource_record_name
  type            = each.value.resource_record_type
  records         = [each.value.resource_record_value]
  ttl             = 300
  allow_overwrite = true
}

resource "aws_acm_certificate_validation" "site" {
  provider = aws.us_east_1

  certificate_arn         = aws_acm_certificate.site.arn
  validation_record_fqdns = [for record in aws_route53_record.site_certificate_validation : record.fqdn]
}

# Origin access control: CloudFront signs its requests, the bucket policy admits only this
# distribution (the original's bucket was public-read).
resource "aws_cloudfront_origin_access_control" "site" {
  name                              = "${var.prefix}-site"
  description                       = "sslnotify site bucket"
  origin_access_control_origin_type = "s3"
  signing_behavior                  = "always"
  signing_protocol                  = "sigv4"
}

# The same security headers the local stack serves: local/security_headers.json is read by
# both (tests/integration/test_terraform.py compares the plan with it). {api_origin} in the
# CSP becomes the API's origin; the HTTPS-only ones (HSTS) apply here since CloudFront is HTTPS.
locals {
  security_headers_file = jsondecode(file("${path.module}/../local/security_headers.json"))
  security_headers = {
    for name, value in merge(local.security_headers_file.headers, local.security_headers_file.https_only) :
    name => replace(value, "{api_origin}", local.api_url)
  }
  hsts = local.security_headers["Strict-Transport-Security"]
}

resource "aws_cloudfront_response_headers_policy" "security" {
  #checkov:skip=CKV_AWS_259:HSTS is computed from local/security_headers.json (two years, includeSubDomains), which checkov cannot evaluate; preload is left out on purpose (it is a commitment made at hstspreload.org, not by a header). tests/integration/test_terraform.py proves the policy sends the file's headers.
  count = var.enable_response_headers_policy ? 1 : 0

  name    = "${var.prefix}-security-headers"
  comment = "sslnotify: the security headers the local stack serves too"

  security_headers_config {
    content_security_policy {
      content_security_policy = local.security_headers["Content-Security-Policy"]
      override                = true
    }

    strict_transport_security {
      access_control_max_age_sec = tonumber(regex("max-age=(\\d+)", local.hsts)[0])
      include_subdomains         = strcontains(local.hsts, "includeSubDomains")
      preload                    = strcontains(local.hsts, "preload")
      override                   = true
    }

    content_type_options {
      override = true
    }

    frame_options {
      frame_option = upper(local.security_headers["X-Frame-Options"])
      override     = true
    }

    referrer_policy {
      referrer_policy = local.security_headers["Referrer-Policy"]
      override        = true
    }
  }

  # Headers CloudFront has no dedicated setting for (Permissions-Policy, COOP, ...).
  dynamic "custom_headers_config" {
    for_each = length(local.extra_security_headers) > 0 ? [1] : []
    content {
      dynamic "items" {
        for_each = local.extra_security_headers
        content {
          header   = items.key
          value    = items.value
          override = true
        }
      }
    }
  }
}

locals {
  # Headers that security_headers_config sets itself; the rest go in as custom headers.
  dedicated_security_headers = [
    "Content-Security-Policy", "Strict-Transport-Security", "X-Content-Type-Options",
    "X-Frame-Options", "Referrer-Policy", "X-XSS-Protection",
  ]
  extra_security_headers = {
    for name, value in local.security_headers : name => value
    if !contains(local.dedicated_security_headers, name)
  }
}

resource "aws_cloudfront_distribution" "site" {
  #checkov:skip=CKV_AWS_68:No WAF: its fixed monthly cost exceeds the whole service's, and the origin is static files.
  #checkov:skip=CKV2_AWS_47:No WAF (see CKV_AWS_68); the origin is static files, nothing that Log4j rules protect.
  #checkov:skip=CKV_AWS_86:Access logs would need a log bucket with ACLs (CloudFront standard logging); the site is static and the API logs its own requests.
  #checkov:skip=CKV_AWS_310:Origin failover needs a second bucket in another region; the site is static and redeployed by make deploy.
  #checkov:skip=CKV_AWS_374:The service is for everyone: no geographic restriction.
  enabled             = true
  is_ipv6_enabled     = true
  http_version        = "http2and3"
  comment             = "sslnotify site ${var.domain_name}"
  default_root_object = "index.html"
  aliases             = [var.domain_name]
  price_class         = "PriceClass_100"
  # make deploy uploads and invalidates while the edge locations update: no need to wait.
  wait_for_deployment = false

  origin {
    origin_id                = "site"
    domain_name              = aws_s3_bucket.bucket["frontend"].bucket_regional_domain_name
    origin_access_control_id = aws_cloudfront_origin_access_control.site.id
  }

  default_cache_behavior {
    target_origin_id           = "site"
    viewer_protocol_policy     = "redirect-to-https"
    allowed_methods            = ["GET", "HEAD"]
    cached_methods             = ["GET", "HEAD"]
    compress                   = true
    cache_policy_id            = "658327ea-f89d-4fab-a63d-7e88639e58f6" # AWS managed: CachingOptimized
    response_headers_policy_id = try(aws_cloudfront_response_headers_policy.security[0].id, null)
  }

  # A missing key is S3's 403 AccessDenied (CloudFront may not list the bucket) or 404:
  # either way the visitor gets the site's own "Page not found" page, with status 404.
  dynamic "custom_error_response" {
    for_each = [403, 404]
    content {
      error_code            = custom_error_response.value
      response_code         = 404
      response_page_path    = "/404.html"
      error_caching_min_ttl = 60
    }
  }

  restrictions {
    geo_restriction {
      restriction_type = "none"
    }
  }

  viewer_certificate {
    acm_certificate_arn      = aws_acm_certificate_validation.site.certificate_arn
    ssl_support_method       = "sni-only"
    minimum_protocol_version = "TLSv1.2_2021"
  }
}
