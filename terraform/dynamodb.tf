# One table per entry of resources.json, keyed exactly as the code reads them.
# Every key attribute is a string (pseudonyms, Target.key, rate-limit keys).
resource "aws_dynamodb_table" "table" {
  #checkov:skip=CKV_AWS_119:Encrypted at rest with the AWS-managed key (server_side_encryption below); a customer-managed key adds cost and key-policy surface for no gain here, and addresses are already sealed with AES-GCM by the code before they reach the table.
  for_each = local.tables

  name         = "${var.prefix}-${each.key}"
  billing_mode = "PAY_PER_REQUEST" # traffic is a daily spike and a trickle: on-demand costs nothing idle
  hash_key     = each.value.hash_key
  range_key    = try(each.value.range_key, null)

  deletion_protection_enabled = var.protect_data

  attribute {
    name = each.value.hash_key
    type = "S"
  }

  dynamic "attribute" {
    for_each = try([each.value.range_key], [])
    content {
      name = attribute.value
      type = "S"
    }
  }

  # Pending subscriptions and rate-limit windows expire on their own (readers also ignore
  # items past their expiry, since TTL deletion lags).
  dynamic "ttl" {
    for_each = try([each.value.ttl_attribute], [])
    content {
      attribute_name = ttl.value
      enabled        = true
    }
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled = true
  }
}
