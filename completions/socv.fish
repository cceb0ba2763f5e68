# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_socv_global_optspecs
    string join \n daemon= ca-cert= h/help V/version
end

function __fish_socv_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_socv_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_socv_using_subcommand
    set -l cmd (__fish_socv_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c socv -n "__fish_socv_needs_command" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_needs_command" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_needs_command" -s V -l version -d 'Print version'
complete -c socv -n "__fish_socv_needs_command" -f -a "run" -d 'Run a test binary on a board of a family: lease, push, run, stream, release'
complete -c socv -n "__fish_socv_needs_command" -f -a "batch" -d 'Run the tests of a plan file concurrently across the lab, with one summary and JUnit file'
complete -c socv -n "__fish_socv_needs_command" -f -a "boards" -d 'List the lab\'s boards: state, health, holder and lease expiry'
complete -c socv -n "__fish_socv_needs_command" -f -a "lease" -d 'Lease a board of a family (or one named board), waiting in the queue if asked'
complete -c socv -n "__fish_socv_needs_command" -f -a "leases" -d 'List the active leases'
complete -c socv -n "__fish_socv_needs_command" -f -a "release" -d 'Release a lease you hold, by lease id or board'
complete -c socv -n "__fish_socv_needs_command" -f -a "status" -d 'Show whether leased and its lease store are up'
complete -c socv -n "__fish_socv_needs_command" -f -a "workers" -d 'List the workers of the lab\'s Prefect work pool: status, last heartbeat, runs held'
complete -c socv -n "__fish_socv_needs_command" -f -a "history" -d 'List recorded runs: board, binary, holder, result, duration, Prefect link'
complete -c socv -n "__fish_socv_needs_command" -f -a "exec" -d 'Run a shell command on a board you hold; its exit status is socv\'s'
complete -c socv -n "__fish_socv_needs_command" -f -a "push" -d 'Copy a file to a board you hold, through its console, verified by checksum'
complete -c socv -n "__fish_socv_needs_command" -f -a "console" -d 'Your terminal on the console of a board you hold; `~.` leaves'
complete -c socv -n "__fish_socv_needs_command" -f -a "board" -d 'Administer a board: drain it for maintenance, or put it back into service'
complete -c socv -n "__fish_socv_needs_command" -f -a "power" -d 'Switch, power-cycle or read the PDU outlet of a board you hold'
complete -c socv -n "__fish_socv_needs_command" -f -a "completions" -d 'Print the shell completion script for bash, zsh, fish, elvish or powershell'
complete -c socv -n "__fish_socv_needs_command" -f -a "man" -d 'Print socv\'s man page, or write all man pages (also leased\'s) into a directory'
complete -c socv -n "__fish_socv_needs_command" -f -a "demo" -d 'Try socv on a simulated lab, in one process: lease, push and run a test, release'
complete -c socv -n "__fish_socv_needs_command" -f -a "sim" -d 'Run a simulated lab: telnet boards with a real shell, a PDU, injectable faults'
complete -c socv -n "__fish_socv_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c socv -n "__fish_socv_using_subcommand run" -l timeout -d 'Interrupt the test after this long' -r
complete -c socv -n "__fish_socv_using_subcommand run" -l retries -d 'How many other boards to try after a failure of the board itself' -r
complete -c socv -n "__fish_socv_using_subcommand run" -l lease -d 'Run on a board you already hold (it stays held afterwards)' -r
complete -c socv -n "__fish_socv_using_subcommand run" -l location -d 'Prefer a board at this lab location' -r
complete -c socv -n "__fish_socv_using_subcommand run" -l priority -d 'Place in the queue: high, normal or low [default: normal]' -r
complete -c socv -n "__fish_socv_using_subcommand run" -l wait -d 'How long to wait in the queue for a board' -r
complete -c socv -n "__fish_socv_using_subcommand run" -l junit -d 'Write the result as JUnit XML (for Jenkins\' junit step)' -r -F
complete -c socv -n "__fish_socv_using_subcommand run" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand run" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand run" -l power-cycle -d 'Power-cycle the board through its PDU before running, and wait for it to boot'
complete -c socv -n "__fish_socv_using_subcommand run" -l json -d 'Print the result as one JSON object on stdout (the test\'s output goes to stderr)'
complete -c socv -n "__fish_socv_using_subcommand run" -l no-record -d 'Do not record the run in leased\'s history (`socv history`, Prefect)'
complete -c socv -n "__fish_socv_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand batch" -l parallel -d 'Run at most this many tests at once [default: the number of boards of the families used]' -r
complete -c socv -n "__fish_socv_using_subcommand batch" -l junit -d 'Write one JUnit XML file with every run (for Jenkins\' junit step)' -r -F
complete -c socv -n "__fish_socv_using_subcommand batch" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand batch" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand batch" -l json -d 'Print one JSON object {tests, passed, failed} on stdout instead of the table'
complete -c socv -n "__fish_socv_using_subcommand batch" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand boards" -l family -d 'Only boards of this family (e.g. socA)' -r
complete -c socv -n "__fish_socv_using_subcommand boards" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand boards" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand boards" -l json -d 'Print one JSON array of boards instead of a table'
complete -c socv -n "__fish_socv_using_subcommand boards" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand lease" -l board -d 'Lease this one board instead of any board of a family' -r
complete -c socv -n "__fish_socv_using_subcommand lease" -l location -d 'Prefer a board at this lab location (others still qualify when none is free there)' -r
complete -c socv -n "__fish_socv_using_subcommand lease" -l priority -d 'Place in the queue: high goes before normal, normal before low [default: normal]' -r -f -a "high\t''
normal\t''
low\t''"
complete -c socv -n "__fish_socv_using_subcommand lease" -l ttl -d 'How long the lease lasts unless renewed, e.g. 30m or 2h [default: the daemon\'s, 30m]' -r
complete -c socv -n "__fish_socv_using_subcommand lease" -l wait -d 'When no board is free, wait in the queue: for DURATION, or without limit when alone' -r
complete -c socv -n "__fish_socv_using_subcommand lease" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand lease" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand lease" -l hold -d 'Keep the lease renewed until Ctrl-C, SIGTERM or SIGHUP, then release it'
complete -c socv -n "__fish_socv_using_subcommand lease" -l json -d 'Print the lease as one JSON document (the console password is left out)'
complete -c socv -n "__fish_socv_using_subcommand lease" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand leases" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand leases" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand leases" -l json -d 'Print one JSON array of leases instead of a table (console passwords left out)'
complete -c socv -n "__fish_socv_using_subcommand leases" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand release" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand release" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand release" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand status" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand status" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand status" -l json -d 'Print leased\'s health as one JSON document'
complete -c socv -n "__fish_socv_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand workers" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand workers" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand workers" -l json -d 'Print one JSON object (the pool and its workers) instead of a table'
complete -c socv -n "__fish_socv_using_subcommand workers" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand history" -l board -d 'Only runs on this board' -r
complete -c socv -n "__fish_socv_using_subcommand history" -l family -d 'Only runs on boards of this family' -r
complete -c socv -n "__fish_socv_using_subcommand history" -l holder -d 'Only runs of this holder (user@host, or a token\'s name)' -r
complete -c socv -n "__fish_socv_using_subcommand history" -l state -d 'Only runs in this state: pending, running, completed, failed, timed_out, crashed or cancelled' -r
complete -c socv -n "__fish_socv_using_subcommand history" -l since -d 'Only runs started within this long, such as 90m, 2h or 3d' -r
complete -c socv -n "__fish_socv_using_subcommand history" -l limit -d 'At most this many runs (1 to 1000) [default: 50]' -r
complete -c socv -n "__fish_socv_using_subcommand history" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand history" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand history" -l json -d 'Print one JSON array of runs instead of a table'
complete -c socv -n "__fish_socv_using_subcommand history" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand exec" -l timeout -d 'Interrupt the command (Ctrl-C) after this long, e.g. 30s or 10m' -r
complete -c socv -n "__fish_socv_using_subcommand exec" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand exec" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand exec" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand push" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand push" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand push" -l json -d 'Print the result as JSON'
complete -c socv -n "__fish_socv_using_subcommand push" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand console" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand console" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand console" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand board; and not __fish_seen_subcommand_from drain undrain help" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand board; and not __fish_seen_subcommand_from drain undrain help" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand board; and not __fish_seen_subcommand_from drain undrain help" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand board; and not __fish_seen_subcommand_from drain undrain help" -f -a "drain" -d 'Take a board out of service: no new leases until undrained (needs an admin token)'
complete -c socv -n "__fish_socv_using_subcommand board; and not __fish_seen_subcommand_from drain undrain help" -f -a "undrain" -d 'Put a drained board back into service (needs an admin token)'
complete -c socv -n "__fish_socv_using_subcommand board; and not __fish_seen_subcommand_from drain undrain help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from drain" -l reason -d 'Why, shown to everyone in `socv boards --json` (e.g. "PDU replaced, retest first")' -r
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from drain" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from drain" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from drain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from undrain" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from undrain" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from undrain" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from help" -f -a "drain" -d 'Take a board out of service: no new leases until undrained (needs an admin token)'
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from help" -f -a "undrain" -d 'Put a drained board back into service (needs an admin token)'
complete -c socv -n "__fish_socv_using_subcommand board; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c socv -n "__fish_socv_using_subcommand power" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand power" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand power" -l json -d 'Print the result as JSON (board_id, action, pdu, outlet, state, attempts, elapsed_ms)'
complete -c socv -n "__fish_socv_using_subcommand power" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand completions" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand completions" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand completions" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand man" -l dir -d 'Write every page into DIR instead of printing socv(1)' -r -F
complete -c socv -n "__fish_socv_using_subcommand man" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand man" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand man" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand demo" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand demo" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand demo" -l keep -d 'Keep the simulated lab and leased running after the demo, until Ctrl-C'
complete -c socv -n "__fish_socv_using_subcommand demo" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand sim" -l families -d 'Board families and how many boards of each (ids like soca-001)' -r
complete -c socv -n "__fish_socv_using_subcommand sim" -l listen -d 'The address every board and the PDU listen on' -r
complete -c socv -n "__fish_socv_using_subcommand sim" -l write-boards -d 'Write a boards.yaml describing this lab to FILE (for `leased --boards FILE`)' -r -F
complete -c socv -n "__fish_socv_using_subcommand sim" -l login -d 'The boards\' login [default: root without a password]' -r
complete -c socv -n "__fish_socv_using_subcommand sim" -l fault -d 'Start a board with a fault; repeatable' -r
complete -c socv -n "__fish_socv_using_subcommand sim" -l boot-delay -d 'Time from power-on to the login prompt' -r
complete -c socv -n "__fish_socv_using_subcommand sim" -l dir -d 'Keep the boards\' working directories under DIR [default: a temporary directory, removed on exit]' -r -F
complete -c socv -n "__fish_socv_using_subcommand sim" -l daemon -d 'URL of leased [default: http://127.0.0.1:8000]' -r
complete -c socv -n "__fish_socv_using_subcommand sim" -l ca-cert -d 'Extra CA certificates (PEM) to trust for an https daemon' -r -F
complete -c socv -n "__fish_socv_using_subcommand sim" -l json -d 'Print the boards and endpoints as one JSON document'
complete -c socv -n "__fish_socv_using_subcommand sim" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "run" -d 'Run a test binary on a board of a family: lease, push, run, stream, release'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "batch" -d 'Run the tests of a plan file concurrently across the lab, with one summary and JUnit file'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "boards" -d 'List the lab\'s boards: state, health, holder and lease expiry'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "lease" -d 'Lease a board of a family (or one named board), waiting in the queue if asked'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "leases" -d 'List the active leases'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "release" -d 'Release a lease you hold, by lease id or board'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "status" -d 'Show whether leased and its lease store are up'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "workers" -d 'List the workers of the lab\'s Prefect work pool: status, last heartbeat, runs held'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "history" -d 'List recorded runs: board, binary, holder, result, duration, Prefect link'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "exec" -d 'Run a shell command on a board you hold; its exit status is socv\'s'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "push" -d 'Copy a file to a board you hold, through its console, verified by checksum'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "console" -d 'Your terminal on the console of a board you hold; `~.` leaves'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "board" -d 'Administer a board: drain it for maintenance, or put it back into service'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "power" -d 'Switch, power-cycle or read the PDU outlet of a board you hold'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "completions" -d 'Print the shell completion script for bash, zsh, fish, elvish or powershell'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "man" -d 'Print socv\'s man page, or write all man pages (also leased\'s) into a directory'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "demo" -d 'Try socv on a simulated lab, in one process: lease, push and run a test, release'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "sim" -d 'Run a simulated lab: telnet boards with a real shell, a PDU, injectable faults'
complete -c socv -n "__fish_socv_using_subcommand help; and not __fish_seen_subcommand_from run batch boards lease leases release status workers history exec push console board power completions man demo sim help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c socv -n "__fish_socv_using_subcommand help; and __fish_seen_subcommand_from board" -f -a "drain" -d 'Take a board out of service: no new leases until undrained (needs an admin token)'
complete -c socv -n "__fish_socv_using_subcommand help; and __fish_seen_subcommand_from board" -f -a "undrain" -d 'Put a drained board back into service (needs an admin token)'
