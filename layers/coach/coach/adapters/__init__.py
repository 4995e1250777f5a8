"""The only modules that import boto3, twilio or openai. Each turns SDK errors into domain errors."""
