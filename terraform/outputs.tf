output "site_url" {
  description = "The website."
  value       = local.site_url
}

output "api_url" {
  description = "The API (the frontend's config.js points here)."
  value       = local.api_url
}

output "name_servers" {
  description = "Set these as the domain's name servers at the registrar (once)."
  value       = local.name_servers
}

output "frontend_bucket" {
  description = "Where make deploy uploads the site."
  value       = aws_s3_bucket.bucket["frontend"].id
}

output "cloudfront_distribution_id" {
  description = "The distribution make deploy invalidates after an upload."
  value       = aws_cloudfront_distribution.site.id
}

output "function_names" {
  description = "Lambda function name of each function of resources.json."
  value       = { for key, function in aws_lambda_function.function : key => function.function_name }
}

output "dead_letter_queue_url" {
  description = "Failed asynchronous invocations land here."
  value       = aws_sqs_queue.dead_letter.url
}

output "api_stage_url" {
  description = "The API's default execute-api URL (works before DNS is delegated)."
  value       = aws_api_gateway_stage.api.invoke_url
}
