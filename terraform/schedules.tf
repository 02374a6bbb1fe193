# The schedules of resources.json: cron's daily sweep at 06:00 UTC, the reporter at 07:00,
# data's hourly backup; each sends its payload as an asynchronous invocation.
resource "aws_cloudwatch_event_rule" "schedule" {
  for_each = local.scheduled

  name                = "${var.prefix}-${each.key}"
  description         = "sslnotify ${each.key}: ${jsonencode(each.value.schedule_payload)}"
  schedule_expression = each.value.schedule
}

resource "aws_cloudwatch_event_target" "schedule" {
  for_each = local.scheduled

  rule  = aws_cloudwatch_event_rule.schedule[each.key].name
  arn   = aws_lambda_function.function[each.key].arn
  input = jsonencode(each.value.schedule_payload)
}

resource "aws_lambda_permission" "schedule" {
  for_each = local.scheduled

  statement_id  = "AllowEventBridge"
  action        = "lambda:InvokeFunction"
  function_name = aws_lambda_function.function[each.key].function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.schedule[each.key].arn
}
