# Email: the domain identity verified and DKIM-signed through our own zone (the original
# copied these tokens by hand), a custom MAIL FROM so SPF aligns, SPF and DMARC, bounces
# and complaints to the bounces function, and inbound mail stored in the inbound bucket.
resource "aws_ses_domain_identity" "main" {
  domain = var.domain_name
}

resource "aws_route53_record" "ses_verification" {
  zone_id = local.zone_id
  name    = "_amazonses.${var.domain_name}"
  type    = "TXT"
  ttl     = 600
  records = [aws_ses_domain_identity.main.verification_token]
}

resource "aws_ses_domain_identity_verification" "main" {
  domain     = aws_ses_domain_identity.main.id
  depends_on = [aws_route53_record.ses_verification]
}

resource "aws_ses_domain_dkim" "main" {
  domain = aws_ses_domain_identity.main.domain
}

# SES always issues three DKIM tokens.
resource "aws_route53_record" "dkim" {
  count = 3

  zone_id = local.zone_id
  name    = "${aws_ses_domain_dkim.main.dkim_tokens[count.index]}._domainkey.${var.domain_name}"
  type    = "CNAME"
  ttl     = 600
  records = ["${aws_ses_domain_dkim.main.dkim_tokens[count.index]}.dkim.amazonses.com"]
}

# Bounces come back to mail.<domain>, so SPF passes for our own domain and DMARC aligns.
resource "aws_ses_domain_mail_from" "main" {
  domain                 = aws_ses_domain_identity.main.domain
  mail_from_domain       = local.mail_from
  behavior_on_mx_failure = "UseDefaultValue"
}

resource "aws_route53_record" "mail_from_mx" {
  zone_id = local.zone_id
  name    = local.mail_from
  type    = "MX"
  ttl     = 600
  records = ["10 feedback-smtp.${var.region}.amazonses.com"]
}

resource "aws_route53_record" "mail_from_spf" {
  zone_id = local.zone_id
  name    = local.mail_from
  type    = "TXT"
  ttl     = 600
  records = ["v=spf1 include:amazonses.com -all"]
}

# The apex sends nothing itself (its mail comes from mail.<domain>) and receives through SES.
resource "aws_route53_record" "apex_spf" {
  zone_id = local.zone_id
  name    = var.domain_name
  type    = "TXT"
  ttl     = 600
  records = ["v=spf1 include:amazonses.com -all"]
}

resource "aws_route53_record" "inbound_mx" {
  zone_id = local.zone_id
  name    = var.domain_name
  type    = "MX"
  ttl     = 600
  records = ["10 inbound-smtp.${var.region}.amazonaws.com"]
}

# Aggregate reports arrive at dmarc@<domain>, stored with the other inbound mail.
resource "aws_route53_record" "dmarc" {
  zone_id = local.zone_id
  name    = "_dmarc.${var.domain_name}"
  type    = "TXT"
  ttl     = 600
  records = ["v=DMARC1; p=quarantine; adkim=s; aspf=r; rua=mailto:dmarc@${var.domain_name}"]
}

# Every mail the code sends names this configuration set (SSLNOTIFY_SES_CONFIGURATION_SET).
resource "aws_ses_configuration_set" "main" {
  name                       = var.prefix
  reputation_metrics_enabled = true

  # Alerts carry unsubscribe tokens: never send them in clear text.
  dynamic "delivery_options" {
    for_each = var.ses_require_tls ? [1] : []
    content {
      tls_policy = "Require"
    }
  }
}

# Bounces and complaints -> SNS -> the bounces function, which suppresses the address.
resource "aws_sns_topic" "bounces" {
  #checkov:skip=CKV_AWS_26:SES cannot publish to a topic encrypted with the AWS-managed key, and a customer-managed key for one notification per bounce adds cost; messages are deleted once delivered to the function.
  name = "${var.prefix}-bounces"
}

data "aws_iam_policy_document" "bounces_topic" {
  statement {
    sid       = "SesPublishes"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.bounces.arn]

    principals {
      type        = "Service"
      identifiers = ["ses.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "AWS:SourceAccount"
      values   = [local.account_id]
    }

    condition {
      test     = "ArnLike"
      variable = "AWS:SourceArn"
      values   = ["arn:${local.partition}:ses:${var.region}:${local.account_id}:configuration-set/${aws_ses_configuration_set.main.name}"]
    }
  }
}

resource "aws_sns_topic_policy" "bounces" {
  arn    = aws_sns_topic.bounces.arn
  policy = data.aws_iam_policy_document.bounces_topic.json
}

resource "aws_ses_event_destination" "bounces" {
  name                   = "bounces-and-complaints"
  configuration_set_name = aws_ses_configuration_set.main.name
  enabled                = true
  matching_types         = ["bounce", "complaint"]

  sns_destination {
    topic_arn = aws_sns_topic.bounces.arn
  }

  depends_on = [aws_sns_topic_policy.bounces]
}

resource "aws_sns_topic_subscription" "bounces" {
  topic_arn = aws_sns_topic.bounces.arn
  protocol  = "lambda"
  endpoint  = aws_lambda_function.function["bounces"].arn
}

resource "aws_lambda_permission" "bounces" {
  statement_id  = "AllowSns"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function["bounces"].function_name
  principal     = "sns.amazonaws.com"
  source_arn    = aws_sns_topic.bounces.arn
}

# Inbound mail for noreply@, feedback@ and dmarc@ is scanned and stored in the inbound bucket
# (expired after resources.json's expire_days), as the original kept it.
locals {
  receipt_rule_set = "${var.prefix}-inbound"
}

resource "aws_ses_receipt_rule_set" "inbound" {
  rule_set_name = local.receipt_rule_set
}

resource "aws_ses_receipt_rule" "store" {
  name          = "store"
  rule_set_name = aws_ses_receipt_rule_set.inbound.rule_set_name
  recipients    = [for local_part in ["noreply", "feedback", "dmarc"] : "${local_part}@${var.domain_name}"]
  enabled       = true
  scan_enabled  = true
  tls_policy    = "Require"

  s3_action {
    position    = 1
    bucket_name = aws_s3_bucket.bucket["inbound"].id
  }

  depends_on = [aws_s3_bucket_policy.bucket]
}

resource "aws_ses_active_receipt_rule_set" "inbound" {
  count = var.activate_receipt_rule_set ? 1 : 0

  rule_set_name = aws_ses_receipt_rule_set.inbound.rule_set_name
}
