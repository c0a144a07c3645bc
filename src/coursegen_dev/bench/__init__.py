"""The benchmark of issue 5: the real service driven over HTTP against a fake Messages API."""
