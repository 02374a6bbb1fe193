# Everything the code, the local stack and Terraform must agree on comes from one file:
# table keys and TTL attributes, buckets and their expiry, functions with handler, timeout,
# memory, which functions each invokes, and the schedules with their payloads.
locals {
  resources = jsondecode(file("${path.module}/../chalicelib/resources.json"))
  tables    = local.resources.tables
  buckets   = local.resources.buckets
  functions = local.resources.functions
  scheduled = { for key, spec in local.functions : key => spec if try(spec.schedule, null) != null }

  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition

  api_domain     = "api.${var.domain_name}"
  site_url       = "https://${var.domain_name}"
  api_url        = "https://${local.api_domain}"
  sender_address = "noreply@${var.domain_name}"
  sender         = "sslnotify <${local.sender_address}>"
  feedback_email = var.feedback_email != "" ? var.feedback_email : var.operator_email
  mail_from      = "mail.${var.domain_name}"

  # Bucket names are global across all AWS accounts: the account id keeps them unique.
  bucket_names = { for key in keys(local.buckets) : key => "${var.prefix}-${key}-${local.account_id}" }

  # Names are built rather than read from the resources, so that policies can name
  # functions and log groups without dependency cycles (api -> data -> ...).
  function_names = { for key in keys(local.functions) : key => "${var.prefix}-${key}" }
  function_arns = {
    for key, name in local.function_names :
    key => "arn:${local.partition}:lambda:${var.region}:${local.account_id}:function:${name}"
  }
  log_group_arns = {
    for key, name in local.function_names :
    key => "arn:${local.partition}:logs:${var.region}:${local.account_id}:log-group:/aws/lambda/${name}"
  }
}

data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}
