"""RQ job functions. Each takes ids, reloads its rows, does the work and commits.

Workers run them inside the portal's app context (portal.worker), so they can use the
database and configuration directly.
"""
