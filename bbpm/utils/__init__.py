"""Seeding, logging, timing, devices and experiment bookkeeping."""

from bbpm.utils.device import device_name, get_device, rss_bytes
from bbpm.utils.experiment import Experiment, environment_info, repo_root, to_jsonable
from bbpm.utils.formatting import format_bytes, markdown_table, show_table
from bbpm.utils.logging import get_logger
from bbpm.utils.progress import progress
from bbpm.utils.seed import set_global_seed
from bbpm.utils.timing import Timer

__all__ = [
    "Experiment",
    "Timer",
    "device_name",
    "environment_info",
    "format_bytes",
    "get_device",
    "get_logger",
    "markdown_table",
    "progress",
    "repo_root",
    "rss_bytes",
    "set_global_seed",
    "show_table",
    "to_jsonable",
]
