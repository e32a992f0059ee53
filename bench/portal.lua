-- wrk script for bench/portal_api.py: the portal's hot calls, with every response's status counted.
--
--   wrk -t2 -c64 -d5s --latency -s bench/portal.lua URL -- MODE THREADS [FILE CLIENT_ID CLIENT_SECRET]
--
--   plain   THREADS                 GET of the URL's path (the /healthz baseline), counted the same way
--   grc     THREADS FILE            GetRoleCredentials; FILE has "token<TAB>account id<TAB>role name" lines,
--                                   sent in turn (each thread starts at its own place in the list)
--   refresh THREADS FILE ID SECRET  CreateToken with grantType refresh_token; FILE has one refresh token a
--                                   line, and each is sent exactly once: thread k takes lines k, k+THREADS, …
--                                   A thread that runs out stops (the run is reported as exhausted).
--
-- wrk only counts non-2xx/3xx responses by itself; response() counts every status, and done() prints one
-- line the Python side parses:  KEYHALL_BENCH statuses=200:123,401:2 exhausted=0 first_bad=<status body>

local threads = {}
local counter = 0

function setup(thread)
   thread:set("thread_index", counter)
   counter = counter + 1
   table.insert(threads, thread)
end

statuses = {}
exhausted = 0
first_bad = ""

local mode, requests, count, position, spare

local function read_lines(path)
   local lines = {}
   for line in io.lines(path) do
      if line ~= "" then
         lines[#lines + 1] = line
      end
   end
   return lines
end

local function split_tabs(line)
   local fields = {}
   for field in string.gmatch(line, "[^\t]+") do
      fields[#fields + 1] = field
   end
   return fields
end

function init(args)
   mode = args[1]
   local nthreads = tonumber(args[2])
   local index = thread_index or 0
   if mode == "grc" then
      requests = {}
      for _, line in ipairs(read_lines(args[3])) do
         local f = split_tabs(line)
         local path = "/federation/credentials?role_name=" .. f[3] .. "&account_id=" .. f[2]
         requests[#requests + 1] = wrk.format("GET", path, { ["x-amz-sso_bearer_token"] = f[1] })
      end
      count = #requests
      position = math.floor(count * index / nthreads)
   elseif mode == "refresh" then
      local all = read_lines(args[3])
      local prefix = '{"clientId":"' .. args[4] .. '","clientSecret":"' .. args[5]
         .. '","grantType":"refresh_token","refreshToken":"'
      requests = {}
      for i = index + 1, #all, nthreads do
         requests[#requests + 1] = wrk.format(
            "POST", "/token", { ["Content-Type"] = "application/json" }, prefix .. all[i] .. '"}'
         )
      end
      count = #requests
      position = 0
      spare = wrk.format("GET", "/healthz") -- what a stopping thread sends last, if anything
   else
      requests = { wrk.format() }
      count = 1
      position = 0
   end
end

function request()
   if requests == nil then -- wrk checks the script's request once in its main state, before any init
      return wrk.format()
   end
   if mode == "refresh" then
      position = position + 1
      if position > count then -- never send a token twice: that is reuse, and revokes its session
         exhausted = exhausted + 1
         wrk.thread:stop()
         return spare
      end
      return requests[position]
   end
   position = position % count + 1
   return requests[position]
end

function response(status, headers, body)
   statuses[status] = (statuses[status] or 0) + 1
   if status ~= 200 and first_bad == "" then
      first_bad = status .. " " .. string.sub(string.gsub(body, "%s+", " "), 1, 300)
   end
end

function done(summary, latency, requests)
   local total = {}
   local stopped, bad = 0, ""
   for _, thread in ipairs(threads) do
      for status, n in pairs(thread:get("statuses")) do
         total[status] = (total[status] or 0) + n
      end
      stopped = stopped + thread:get("exhausted")
      local first = thread:get("first_bad")
      if bad == "" and first ~= "" then
         bad = first
      end
   end
   local parts = {}
   for status, n in pairs(total) do
      parts[#parts + 1] = string.format("%d:%d", status, n)
   end
   io.write(string.format("KEYHALL_BENCH statuses=%s exhausted=%d first_bad=%s\n",
      table.concat(parts, ","), stopped, bad))
end
