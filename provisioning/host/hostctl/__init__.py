"""pycluster's agent on each host, run as root by the program's SSH commands.

Every change follows the same path: stage the new files, validate them with the
real tool (nginx -t, gunicorn --check-config, systemd-analyze verify), switch
atomically, reload, check health, and roll back if the check fails. A failed
validation leaves the running service untouched.

Modules by role: bundle (the files on stdin), boot, kernel, nginx, monitoring,
release (the app's releases and the LB's static files), validate (the real
tools), rollout (a node's change and the load balancer's view of it), tls.
contract.json says where things live and which subcommands and flags exist;
cli builds the command line from it. Installed on hosts as one zipapp.
"""
