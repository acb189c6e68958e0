from django.apps import AppConfig


class OracleConfig(AppConfig):
    name = "oracle"
    verbose_name = "Price oracle"
