-- A figure's own script (BENCH_SCRIPT) plus a line on stderr for every non-2xx answer, so that
-- bench/run can name the statuses behind a figure's error count. Run only after a figure had
-- errors: the hook makes wrk parse every response, which would slow the measured run.
dofile(os.getenv("BENCH_LUA") .. "/" .. os.getenv("BENCH_SCRIPT"))
response = function(status, headers, body)
  if status >= 300 then io.stderr:write("STATUS " .. status .. "\n") end
end
