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

# The apex's own mail records, each behind a variable: an existing zone may already have
# them (Google site verification, Workspace mail), and Route53 refuses a second TXT or MX
# record set at the apex. The apex sends nothing itself (its mail comes from mail.<domain>);
# its SPF is the domain's own policy, merged with one the apex already publishes.
locals {
  spf_all_term   = "^[-~?+]?all$"
  existing_spf   = [for value in var.existing_apex_txt : trimspace(value) if startswith(lower(trimspace(value)), "v=spf1")]
  other_apex_txt = [for value in var.existing_apex_txt : value if !startswith(lower(trimspace(value)), "v=spf1")]
  spf_terms      = length(local.existing_spf) > 0 ? [for term in split(" ", local.existing_spf[0]) : term if term != ""] : ["v=spf1", "-all"]
  # Mechanisms keep their order, modifiers (redirect=, exp=) go last, the `all` is kept as it was.
  spf_mechanisms = [
    for term in local.spf_terms : term
    if lower(term) != "v=spf1" && lower(term) != "include:amazonses.com" && !can(regex(local.spf_all_term, lower(term))) && !strcontains(term, "=")
  ]
  spf_modifiers = [for term in local.spf_terms : term if lower(term) != "v=spf1" && strcontains(term, "=")]
  spf_all       = [for term in local.spf_terms : term if can(regex(local.spf_all_term, lower(term)))]
  apex_spf      = join(" ", concat(["v=spf1"], local.spf_mechanisms, ["include:amazonses.com"], local.spf_all, local.spf_modifiers))
  apex_txt      = concat(local.other_apex_txt, [local.apex_spf])
}

resource "aws_route53_record" "apex_spf" {
  count = var.manage_spf ? 1 : 0

  zone_id = local.zone_id
  name    = var.domain_name
  type    = "TXT"
  ttl     = 600
  records = local.apex_txt
  # Given the apex's existing TXT values, this record set replaces them with the same
  # values and the merged SPF; otherwise Route53's "already exists" stops the apply.
  allow_overwrite = length(var.existing_apex_txt) > 0
}

resource "aws_route53_record" "inbound_mx" {
  count = var.receive_mail ? 1 : 0

  zone_id = local.zone_id
  name    = var.domain_name
  type    = "MX"
  ttl     = 600
  records = ["10 inbound-smtp.${var.region}.amazonaws.com"]
}

# Aggregate reports arrive at dmarc@<domain>, stored with the other inbound mail (when this
# stack receives the domain's mail).
resource "aws_route53_record" "dmarc" {
  count = var.manage_dmarc ? 1 : 0

  zone_id = local.zone_id
  name    = "_dmarc.${var.domain_name}"
  type    = "TXT"
  ttl     = 600
  records = [join("; ", compact([
    "v=DMARC1",
    "p=${var.dmarc_policy}",
    "adkim=s",
    "aspf=r",
    var.receive_mail ? "rua=mailto:dmarc@${var.domain_name}" : "",
  ]))]
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
  count = var.receive_mail ? 1 : 0

  rule_set_name = local.receipt_rule_set
}

resource "aws_ses_receipt_rule" "store" {
  count = var.receive_mail ? 1 : 0

  name          = "store"
  rule_set_name = aws_ses_receipt_rule_set.inbound[0].rule_set_name
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
  count = var.receive_mail && var.activate_receipt_rule_set ? 1 : 0

  rule_set_name = aws_ses_receipt_rule_set.inbound[0].rule_set_name
}
