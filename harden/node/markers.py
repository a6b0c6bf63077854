"""The lines harden's node-side scripts print to frame their output, in one place.

Every script the controller sends prints its sections behind one of these markers and the
controller splits on them, so a marker changed on one side only would silently lose output.
"""

FACT = "@@harden-fact "          # facts gathering: one section per requested fact
PS = "@@harden-ps"               # a process list taken around a write
PS_END = "@@harden-ps-end"
TASK = "@@harden-task "          # a write script: the task whose changes follow
ROLLBACK = "@@harden-rb "        # rollback's probe of a run's backup directory
COMMIT = "@@harden-commit"          # a write script: every change written, the commit follows
