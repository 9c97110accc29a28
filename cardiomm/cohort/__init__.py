"""A multi-centre data set as a cohort of sites: its files in the CMRxRecon 2025 layout, the
partition manifest (sites, held-out centres, patient-level splits) and the data root a run
uses (real, or the synthetic set made on first use). The deployed site, the server and the
research harness all read their data through it."""
