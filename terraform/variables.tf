variable "domain_name" {
  description = "The apex domain the service lives on (site at https://<domain>, API at https://api.<domain>, mail from noreply@<domain>)."
  type        = string

  validation {
    condition     = can(regex("^([a-z0-9-]+\\.)+[a-z]{2,}$", var.domain_name))
    error_message = "domain_name must be a lower-case DNS name such as sslnotify.example."
  }
}

variable "operator_email" {
  description = "Where the daily report goes (and feedback, unless feedback_email is set)."
  type        = string

  validation {
    condition     = can(regex("^[^@\\s]+@[^@\\s]+$", var.operator_email))
    error_message = "operator_email must be an email address."
  }
}

variable "alarm_email" {
  description = "Where CloudWatch alarms go (an SNS email subscription, confirmed once from the mail AWS sends); empty means operator_email."
  type        = string
  default     = ""
}

variable "feedback_email" {
  description = "Where the feedback form's messages go; empty means operator_email."
  type        = string
  default     = ""
}

variable "prefix" {
  description = "Name prefix of every resource; the functions see it as SSLNOTIFY_PREFIX (tables and functions are <prefix>-<key>)."
  type        = string
  default     = "sslnotify"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,30}$", var.prefix))
    error_message = "prefix must be 2-31 lower-case letters, digits or dashes, starting with a letter."
  }
}

variable "region" {
  description = "The AWS region of everything but CloudFront's certificate (which is always us-east-1). It must offer SES email receiving (e.g. us-east-1, us-west-2, eu-west-1)."
  type        = string
  default     = "us-east-1"
}

variable "hosted_zone_id" {
  description = "An existing Route53 hosted zone for domain_name (e.g. the one Route53 Domains created when you bought the domain). Empty: Terraform creates the zone and you delegate the domain to its name servers."
  type        = string
  default     = ""
}

variable "build_dir" {
  description = "Where tools/package.py wrote one zip per function and openapi.json (relative to this directory)."
  type        = string
  default     = "../build/lambda"
}

variable "openapi_file" {
  description = "The API description in build_dir. Testing only: the emulator needs openapi-emulated.json (see tools/package.py)."
  type        = string
  default     = "openapi.json"
}

variable "log_retention_days" {
  description = "How long function logs are kept. Logs hold only pseudonyms, but shorter is kinder."
  type        = number
  default     = 30
}

variable "api_throttle_rate" {
  description = "Steady-state requests per second the API accepts (API Gateway stage throttling)."
  type        = number
  default     = 20
}

variable "api_throttle_burst" {
  description = "Burst of requests the API accepts above the steady rate."
  type        = number
  default     = 40
}

variable "secret_recovery_days" {
  description = "Days a deleted deployment secret can be recovered (7-30), or 0 to delete it at once. While it is recoverable its name stays taken, so a destroy followed by an apply under the same prefix fails: use 0 for a stage you tear down and re-create (the subscriptions it keyed are gone with it)."
  type        = number
  default     = 30

  validation {
    condition     = var.secret_recovery_days == 0 || (var.secret_recovery_days >= 7 && var.secret_recovery_days <= 30)
    error_message = "secret_recovery_days must be 0 or between 7 and 30."
  }
}

variable "check_ipv6" {
  description = "Probe the IPv6 addresses of checked hosts too (SSLNOTIFY_CHECK_IPV6). Lambda outside a VPC has no IPv6 egress, so leave this off unless the functions run in dual-stack subnets with IPv6 egress (README, \"Checking over IPv6\"); off, IPv6 addresses are listed as not checked."
  type        = bool
  default     = false
}

variable "protect_data" {
  description = "Deletion protection on the tables. Turn off only to tear a test stage down."
  type        = bool
  default     = true
}

variable "activate_receipt_rule_set" {
  description = "Make this stage's SES receipt rule set the active one. A region has ONE active rule set per account: turn off for a second stage in the same account and region."
  type        = bool
  default     = true
}

variable "receive_mail" {
  description = "Receive the domain's mail through SES (apex MX, receipt rules storing noreply@, feedback@ and dmarc@ in the inbound bucket). Turn off when the domain already receives mail elsewhere (e.g. Google Workspace): the apex MX would take all of it."
  type        = bool
  default     = true
}

variable "manage_spf" {
  description = "Publish the apex SPF TXT record. Turn off to leave the apex's TXT records alone entirely (then keep your own SPF; the service's mail passes SPF through mail.<domain> anyway)."
  type        = bool
  default     = true
}

variable "existing_apex_txt" {
  description = "The TXT values the apex already publishes in an existing zone (an SPF record, google-site-verification=..., ...). Given, Terraform takes the apex TXT record set over, keeps these values and merges include:amazonses.com into the existing SPF instead of adding a second one (two SPF records fail). Empty: the zone has no apex TXT."
  type        = list(string)
  default     = []

  validation {
    condition     = length([for value in var.existing_apex_txt : value if startswith(lower(trimspace(value)), "v=spf1")]) <= 1
    error_message = "existing_apex_txt may hold at most one SPF record (v=spf1 ...)."
  }
}

variable "manage_dmarc" {
  description = "Publish _dmarc.<domain>. Turn off when the domain already has a DMARC policy: keep yours (SES mail is DKIM-signed for the domain, so it aligns)."
  type        = bool
  default     = true
}

variable "dmarc_policy" {
  description = "The DMARC policy published when manage_dmarc is on: none, quarantine or reject. quarantine sends every other sender of the domain to spam, so only keep it when this service is the domain's only sender."
  type        = string
  default     = "quarantine"

  validation {
    condition     = contains(["none", "quarantine", "reject"], var.dmarc_policy)
    error_message = "dmarc_policy must be none, quarantine or reject."
  }
}

variable "ses_require_tls" {
  description = "Send mail only over TLS (SES configuration set delivery option). Always true in AWS; the emulator used by the tests lacks this setting."
  type        = bool
  default     = true
}

variable "deny_insecure_transport" {
  description = "Bucket policies refuse any request not made over TLS. Always true in AWS; the emulator used by the tests is plain HTTP and enforces the denial."
  type        = bool
  default     = true
}

variable "enable_response_headers_policy" {
  description = "Attach the security response-headers policy to CloudFront. Always true in AWS; the emulator used by the tests lacks this resource."
  type        = bool
  default     = true
}

variable "aws_endpoint" {
  description = "Testing only: send every AWS API call to this endpoint (a local moto server). Empty for real AWS."
  type        = string
  default     = ""
}
