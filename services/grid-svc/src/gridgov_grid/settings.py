from gridgov_common.settings import ServiceSettings


class Settings(ServiceSettings):
    service_name: str = "grid-svc"
    # How far (metres) a grid may stick out of its community before it is rejected.
    containment_tolerance_m: float = 5.0
    # Sibling grids may overlap along a strip this wide (digitising noise), no more.
    overlap_tolerance_m: float = 1.0
    overlap_min_area_m2: float = 1.0
    # Gaps in a community's coverage narrower/smaller than this are not reported.
    gap_tolerance_m: float = 0.5
    gap_min_area_m2: float = 1.0
    max_batch_points: int = 10_000
