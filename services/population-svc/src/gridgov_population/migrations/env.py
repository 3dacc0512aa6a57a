from gridgov_common.migrations import run_env
from gridgov_population.models import Base

run_env(Base.metadata)
