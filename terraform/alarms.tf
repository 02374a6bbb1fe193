# The operator hears within minutes: CloudWatch alarms, through one SNS topic, to the
# operator's address. The daily report (chalicelib/report.py) shows the same signals.
# Confirm the subscription AWS mails to the operator after the first apply, or nothing arrives.
locals {
  alarm_email = var.alarm_email != "" ? var.alarm_email : var.operator_email
  # The namespace and dimension of the metrics the code writes itself (chalicelib/metrics.py).
  metric_namespace = "sslnotify"
}

resource "aws_sns_topic" "alarms" {
  #checkov:skip=CKV_AWS_26:CloudWatch alarms cannot publish to a topic encrypted with the AWS-managed key, and a customer-managed key for a few alarm messages a year adds cost; the messages name only alarms.
  name = "${var.prefix}-alarms"
}

resource "aws_sns_topic_subscription" "alarms" {
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = local.alarm_email
}

# A failed asynchronous invocation that outlived Lambda's two retries: a batch of checks,
# a mail or a job was not done. `sslnotify trigger redrive` replays the queue.
resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.prefix}-dead-letters"
  alarm_description   = "Invocations failed three times and wait in ${aws_sqs_queue.dead_letter.name}. Read the functions' logs, fix, then: sslnotify trigger redrive --prefix ${var.prefix}"
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letter.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# Any function that raised or timed out (Errors), or that Lambda refused to run for lack of
# concurrency (Throttles: the account's quota is shared by the API and the sweep).
resource "aws_cloudwatch_metric_alarm" "function_errors" {
  for_each = local.functions

  alarm_name          = "${local.function_names[each.key]}-errors"
  alarm_description   = "The ${each.key} function failed (an exception or a timeout); its log group says why."
  namespace           = "AWS/Lambda"
  metric_name         = "Errors"
  dimensions          = { FunctionName = local.function_names[each.key] }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "function_throttles" {
  for_each = local.functions

  alarm_name          = "${local.function_names[each.key]}-throttles"
  alarm_description   = "Lambda refused to run the ${each.key} function: the account's concurrency is used up (README: request a higher quota)."
  namespace           = "AWS/Lambda"
  metric_name         = "Throttles"
  dimensions          = { FunctionName = local.function_names[each.key] }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  comparison_operator = "GreaterThanThreshold"
  threshold           = 0
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

# The reporter runs at 07:00 UTC and writes SweepUnfinished: 1 when today's sweep has not
# checked every subscription it planned at 06:00 (or never started), else 0. A reporter that
# fails shows as its own errors alarm above.
resource "aws_cloudwatch_metric_alarm" "sweep_unfinished" {
  alarm_name          = "${var.prefix}-sweep-unfinished"
  alarm_description   = "Today's 06:00 UTC sweep had not checked every subscription by 07:00 UTC (see the daily report and the cron and checker logs)."
  namespace           = local.metric_namespace
  metric_name         = "SweepUnfinished"
  dimensions          = { Stage = var.prefix }
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = 1
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

# SES reviews an account at a 5 % bounce rate or a 0.1 % complaint rate, and may pause its
# sending: warn below those (the configuration set publishes these reputation metrics).
locals {
  reputation_alarms = {
    bounce-rate    = { metric = "Reputation.BounceRate", threshold = 0.04, what = "bounce rate reached 4 %" }
    complaint-rate = { metric = "Reputation.ComplaintRate", threshold = 0.0008, what = "complaint rate reached 0.08 %" }
  }
}

resource "aws_cloudwatch_metric_alarm" "ses_reputation" {
  for_each = local.reputation_alarms

  alarm_name          = "${var.prefix}-ses-${each.key}"
  alarm_description   = "SES ${each.value.what}; AWS reviews the account at 5 % bounces or 0.1 % complaints. The daily report lists the suppressed addresses."
  namespace           = "AWS/SES"
  metric_name         = each.value.metric
  statistic           = "Maximum"
  period              = 3600
  evaluation_periods  = 1
  comparison_operator = "GreaterThanOrEqualToThreshold"
  threshold           = each.value.threshold
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}
