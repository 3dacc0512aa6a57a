from gridgov_common.migrations import run_env
from gridgov_notify.models import Base

run_env(Base.metadata)
