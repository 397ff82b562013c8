"""CDS Hooks 2.0 service for warning signs of spinal metastasis and metastatic spinal cord compression."""

__version__ = "0.1.0"
