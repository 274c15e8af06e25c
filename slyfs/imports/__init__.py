"""The drop-zone pipeline: settle scheduling, job records and status texts, detection (through the
format registry), validation, spooling and upload; `dropzone` serves `import/` as a writable area."""
