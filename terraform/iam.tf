# One role per function, granting exactly the actions listed for it in permissions.json
# (kept beside this file; tests/integration/test_terraform.py proves the list matches the
# boto3 calls each function's code can make) on only the resources named there.
locals {
  permissions = jsondecode(file("${path.module}/permissions.json"))

  # The symbolic resources permissions.json may name, and their ARNs.
  resource_arns = merge(
    { for key, table in aws_dynamodb_table.table : "table:${key}" => table.arn },
    { for key, bucket in aws_s3_bucket.bucket : "bucket:${key}" => bucket.arn },
    { for key, bucket in aws_s3_bucket.bucket : "objects:${key}" => "${bucket.arn}/*" },
    { for key, arn in local.function_arns : "function:${key}" => arn },
    { for key, arn in local.log_group_arns : "log-group:${key}" => "${arn}:*" },
    {
      "queue:dead-letter"     = aws_sqs_queue.dead_letter.arn
      "ses-identity"          = aws_ses_domain_identity.main.arn
      "ses-identities"        = "arn:${local.partition}:ses:${var.region}:${local.account_id}:identity/*"
      "ses-configuration-set" = "arn:${local.partition}:ses:${var.region}:${local.account_id}:configuration-set/${aws_ses_configuration_set.main.name}"
      # Only for the actions listed under "unscoped" in permissions.json, which says why.
      "*" = "*"
    },
  )

  # Each function's statements: what every function's runtime needs, then its own.
  function_statements = {
    for key, spec in local.functions : key => [
      for statement in concat(local.permissions.runtime, lookup(local.permissions.functions, key, [])) : {
        actions = sort(statement.actions)
        resources = sort(distinct(flatten([
          for token in statement.resources :
          token == "log-group:self" ? [local.resource_arns["log-group:${key}"]] :
          token == "invoked-functions" ? [for target in spec.invokes : local.function_arns[target]] :
          [local.resource_arns[token]]
        ])))
        # A condition's symbolic values: sender-address is the From address of every mail.
        conditions = [for condition in try([statement.condition], []) : {
          test     = condition.test
          variable = condition.variable
          values   = [for value in condition.values : value == "sender-address" ? local.sender_address : value]
        }]
      } if !contains(try(statement.except, []), key)
    ]
  }
}

data "aws_iam_policy_document" "assume_lambda" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["lambda.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "function" {
  for_each = local.functions

  name               = "${var.prefix}-${each.key}"
  assume_role_policy = data.aws_iam_policy_document.assume_lambda.json
}

data "aws_iam_policy_document" "function" {
  for_each = local.functions

  dynamic "statement" {
    for_each = local.function_statements[each.key]
    content {
      actions   = statement.value.actions
      resources = statement.value.resources

      dynamic "condition" {
        for_each = statement.value.conditions
        content {
          test     = condition.value.test
          variable = condition.value.variable
          values   = condition.value.values
        }
      }
    }
  }
}

resource "aws_iam_role_policy" "function" {
  for_each = local.functions

  name   = "${var.prefix}-${each.key}"
  role   = aws_iam_role.function[each.key].id
  policy = data.aws_iam_policy_document.function[each.key].json
}
