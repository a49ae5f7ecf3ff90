"""Datasets: readers per source (AMASS, CMU ASF/AMC, BVH, RICH, ADT), preprocessing into one HDF5 layout, training crops."""
