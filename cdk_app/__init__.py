"""The AWS application as one CDK app: a thin stack composing one construct per capability."""
