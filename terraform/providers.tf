# Real AWS by default. The test suite sets var.aws_endpoint to a local moto server, which
# points every service this configuration uses at the emulator and skips the checks that
# only make sense against AWS (credentials, instance metadata).
locals {
  emulated = var.aws_endpoint != ""
  endpoint = local.emulated ? var.aws_endpoint : null
}

provider "aws" {
  region = var.region

  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated
  s3_use_path_style           = local.emulated
  # The emulator answers 500 to an action it lacks: fail at once rather than retry for minutes.
  max_retries = local.emulated ? 1 : null

  endpoints {
    acm            = local.endpoint
    apigateway     = local.endpoint
    cloudfront     = local.endpoint
    cloudwatch     = local.endpoint
    cloudwatchlogs = local.endpoint
    dynamodb       = local.endpoint
    events         = local.endpoint
    iam            = local.endpoint
    lambda         = local.endpoint
    route53        = local.endpoint
    s3             = local.endpoint
    secretsmanager = local.endpoint
    ses            = local.endpoint
    sns            = local.endpoint
    sqs            = local.endpoint
    sts            = local.endpoint
  }

  default_tags {
    tags = {
      Project = "sslnotify"
      Stage   = var.prefix
    }
  }
}

# CloudFront only accepts certificates issued in us-east-1, whatever region the rest is in.
provider "aws" {
  alias  = "us_east_1"
  region = "us-east-1"

  skip_credentials_validation = local.emulated
  skip_metadata_api_check     = local.emulated
  skip_region_validation      = local.emulated
  s3_use_path_style           = local.emulated
  max_retries                 = local.emulated ? 1 : null

  endpoints {
    acm = local.endpoint
    sts = local.endpoint
  }

  default_tags {
    tags = {
      Project = "sslnotify"
      Stage   = var.prefix
    }
  }
}
