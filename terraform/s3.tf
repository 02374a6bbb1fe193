# Three private buckets from resources.json: backups (the data function's hourly dumps),
# inbound (mail SES receives for noreply@, feedback@, dmarc@) and frontend (the static site,
# readable only by this stack's CloudFront distribution, never public).
resource "aws_s3_bucket" "bucket" {
  #checkov:skip=CKV_AWS_18:Server access logs would need a log bucket of their own (which would need one too); CloudTrail data events are the tool if object-level auditing is ever wanted.
  #checkov:skip=CKV_AWS_144:Cross-region replication doubles cost; backups are a convenience on top of DynamoDB point-in-time recovery, and the site is rebuilt from the repository.
  #checkov:skip=CKV_AWS_145:SSE-S3 (AES-256) encryption is on; SSE-KMS with a customer key would have to be granted to CloudFront and SES as well, and backups hold addresses only sealed with AES-GCM.
  #checkov:skip=CKV2_AWS_62:Nothing reacts to new objects; event notifications would have no consumer.
  for_each = local.buckets

  bucket = local.bucket_names[each.key]
}

resource "aws_s3_bucket_public_access_block" "bucket" {
  for_each = aws_s3_bucket.bucket

  bucket                  = each.value.id
  block_public_acls       = true
  block_public_policy     = true
  ignore_public_acls      = true
  restrict_public_buckets = true
}

# ACLs off: the bucket policy alone decides access.
resource "aws_s3_bucket_ownership_controls" "bucket" {
  for_each = aws_s3_bucket.bucket

  bucket = each.value.id
  rule {
    object_ownership = "BucketOwnerEnforced"
  }
}

resource "aws_s3_bucket_server_side_encryption_configuration" "bucket" {
  for_each = aws_s3_bucket.bucket

  bucket = each.value.id
  rule {
    apply_server_side_encryption_by_default {
      sse_algorithm = "AES256"
    }
  }
}

# Versioning guards against an overwrite or a deletion; the lifecycle below expires old
# versions so that this costs little.
resource "aws_s3_bucket_versioning" "bucket" {
  for_each = aws_s3_bucket.bucket

  bucket = each.value.id
  versioning_configuration {
    status = "Enabled"
  }
}

resource "aws_s3_bucket_lifecycle_configuration" "bucket" {
  for_each = aws_s3_bucket.bucket

  bucket = each.value.id

  rule {
    id     = "expire"
    status = "Enabled"

    filter {}

    # Buckets with expire_days in resources.json (backups, inbound mail) forget objects
    # after that many days; the site's current files never expire.
    dynamic "expiration" {
      for_each = try([local.buckets[each.key].expire_days], [])
      content {
        days = expiration.value
      }
    }

    noncurrent_version_expiration {
      noncurrent_days = try(local.buckets[each.key].expire_days, 30)
    }

    abort_incomplete_multipart_upload {
      days_after_initiation = 1
    }
  }

  depends_on = [aws_s3_bucket_versioning.bucket]
}

# Every bucket refuses plain-HTTP requests.
data "aws_iam_policy_document" "tls_only" {
  for_each = var.deny_insecure_transport ? local.buckets : {}

  statement {
    sid       = "DenyInsecureTransport"
    effect    = "Deny"
    actions   = ["s3:*"]
    resources = [aws_s3_bucket.bucket[each.key].arn, "${aws_s3_bucket.bucket[each.key].arn}/*"]

    principals {
      type        = "*"
      identifiers = ["*"]
    }

    condition {
      test     = "Bool"
      variable = "aws:SecureTransport"
      values   = ["false"]
    }
  }
}

# Buckets with a service to admit add it to the TLS rule.
locals {
  buckets_admitting_services = ["frontend", "inbound"]
  buckets_with_policy = {
    for key, spec in local.buckets : key => spec
    if var.deny_insecure_transport || contains(local.buckets_admitting_services, key)
  }
}

data "aws_iam_policy_document" "bucket" {
  for_each = local.buckets_with_policy

  source_policy_documents = var.deny_insecure_transport ? [data.aws_iam_policy_document.tls_only[each.key].json] : []

  # The site is read only through CloudFront's origin access control, by this distribution.
  dynamic "statement" {
    for_each = each.key == "frontend" ? [1] : []
    content {
      sid       = "CloudFrontReadsSite"
      actions   = ["s3:GetObject"]
      resources = ["${aws_s3_bucket.bucket[each.key].arn}/*"]

      principals {
        type        = "Service"
        identifiers = ["cloudfront.amazonaws.com"]
      }

      condition {
        test     = "StringEquals"
        variable = "AWS:SourceArn"
        values   = [aws_cloudfront_distribution.site.arn]
      }
    }
  }

  # SES stores received mail here, and only for this account's receipt rule.
  dynamic "statement" {
    for_each = each.key == "inbound" ? [1] : []
    content {
      sid       = "SesStoresInboundMail"
      actions   = ["s3:PutObject"]
      resources = ["${aws_s3_bucket.bucket[each.key].arn}/*"]

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
        values   = ["arn:${local.partition}:ses:${var.region}:${local.account_id}:receipt-rule-set/${local.receipt_rule_set}:receipt-rule/*"]
      }
    }
  }
}

resource "aws_s3_bucket_policy" "bucket" {
  for_each = local.buckets_with_policy

  bucket = aws_s3_bucket.bucket[each.key].id
  policy = data.aws_iam_policy_document.bucket[each.key].json

  # A policy naming a service principal is only accepted once public access is blocked
  # as intended (otherwise S3 may judge it public and refuse it).
  depends_on = [aws_s3_bucket_public_access_block.bucket]
}
