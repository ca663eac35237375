from django.apps import AppConfig


class StaffwelfareConfig(AppConfig):
    name = "staffwelfare"
    verbose_name = "Staff welfare"
