"""Quota holds and host claims: checked and written under a lock.

Every function takes a session whose transaction has not run a statement
yet, and keeps its check and its write in that one transaction.
"""
