# The programs: little more than main().
