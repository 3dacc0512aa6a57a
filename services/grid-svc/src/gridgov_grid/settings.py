from gridgov_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "grid-svc"
