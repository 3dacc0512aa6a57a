from gridgov_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "notify-svc"
