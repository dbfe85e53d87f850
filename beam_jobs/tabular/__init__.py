"""The tabular jobs' one reading path: raw CSV/Parquet tables -> validated records
(`records`, `csvsplit`, `values`) -> read (`reading`) -> prepared rows (`prepare`: joins,
derived columns, label, split), shared by the feature job, scoring and monitoring
(`serving`)."""
