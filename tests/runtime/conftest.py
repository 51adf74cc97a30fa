"""The S3 server of these tests (``s3``) is in tests/conftest.py: the dataset and container tests use it too."""
