from gridgov_common.migrations import run_env
from gridgov_inspection.models import Base

run_env(Base.metadata)
