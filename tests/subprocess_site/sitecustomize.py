"""Run by Python at start-up in the processes a test session starts (tests/conftest.py puts
this folder first on their PYTHONPATH): see task_index_once.py."""

from task_index_once import install_in_subprocess

install_in_subprocess()
