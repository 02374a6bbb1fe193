# The deployment secret: the key of the pseudonyms (HMAC) and of the sealed addresses.
# Generated once by AWS at the first apply, never in the repository; ignore_changes keeps
# it, since a new value would orphan every stored subscription.
data "aws_secretsmanager_random_password" "deployment" {
  password_length     = 64
  exclude_punctuation = true
}

resource "aws_secretsmanager_secret" "deployment" {
  #checkov:skip=CKV2_AWS_57:Rotation is deliberately off: the secret keys every stored pseudonym and sealed address, so rotating it would orphan all subscriptions; rotation needs a re-keying migration first.
  #checkov:skip=CKV_AWS_149:Encrypted with the Secrets Manager AWS-managed key; the value also reaches the functions' environment, so a customer-managed key here would protect nothing more.
  name                    = "${var.prefix}/deployment-secret"
  description             = "sslnotify: key of the address pseudonyms and sealed addresses (SSLNOTIFY_SECRET)"
  recovery_window_in_days = var.secret_recovery_days
}

resource "aws_secretsmanager_secret_version" "deployment" {
  secret_id     = aws_secretsmanager_secret.deployment.id
  secret_string = data.aws_secretsmanager_random_password.deployment.random_password

  lifecycle {
    ignore_changes = [secret_string]
  }
}
