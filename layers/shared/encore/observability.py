"""Logger, Tracer and Metrics, created once; every module imports them from here."""

from aws_lambda_powertools import Logger, Metrics, Tracer

SERVICE = "encore"
NAMESPACE = "Encore"

logger = Logger(service=SERVICE)
tracer = Tracer(service=SERVICE)
metrics = Metrics(namespace=NAMESPACE, service=SERVICE)
