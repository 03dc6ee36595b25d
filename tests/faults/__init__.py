"""The fault-injection suite: randomized scenarios against real consumers and a real server.

Each scenario is built from one seed (`plan.make_plan`): a queue of items with
chosen behaviours, two to four `workqueue consume` processes, and a schedule
of faults (killed, paused and terminated consumers, cut connections, server
restarts and crashes) that `injector.Injector` applies while the queue drains.
When every consumer has exited, `checks.check` judges the run from the
server's final state, the exit codes and logs of every process, and the start
and end lines the handler (`handlers.handle`) wrote for every execution.

Modules, in the order a scenario uses them: plan, rig (the server and the
consumer processes), events (the handler's log), injector, checks, scenario
(one run, one result line), campaign (many runs and their totals; also a
script: ``python -m tests.faults.campaign --scenarios 200 --seed S``).
Tests: test_fault_campaign (a few seeded scenarios per CI run) and
test_lease_ahead (a fault-free plan that reproduces a consumer bug the
campaign found; an expected failure until the bug is fixed).
"""
