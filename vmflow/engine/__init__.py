"""Running operations as TaskFlow jobs.

* :mod:`.posting` -- ``post_operation``: instance lock, instance action,
  logbook and job.
* :mod:`.operations` -- status of an operation, ``wait_for_operation``
  (runs the job in-process when no runner is alive), job listings.
* :mod:`.runner` -- the ``vmflow-engine`` conductor and ``run_job_inline``.
* :mod:`.jobboard` -- ``get_jobboard``: the embedded SQL board
  (:mod:`.jobboard_sql`) or TaskFlow's Redis board (:mod:`.jobboard_redis`).
* :mod:`.persistence` -- the TaskFlow persistence backend on the project
  database.
* :mod:`.listeners` -- action events, claim keep-alive, progress.
* :mod:`.locks`, :mod:`.actions`, :mod:`.outcome` -- the rows they write.
"""
