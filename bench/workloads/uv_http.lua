-- wrk script for uv_http: every request carries a unique id, /r/<id>
-- (thread number * 10^9 + a per-thread counter), so that a line logged
-- with another request's id cannot go unnoticed.
local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end

local n = 0
function request()
  n = n + 1
  return wrk.format("GET", "/r/" .. tostring(tid * 1000000000 + n))
end
