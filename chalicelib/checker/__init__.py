"""The certificate checker: parse a target, guard and resolve it, probe it, then judge the evidence.

Network evidence first (targets, ssrf, probe), then a pure evaluation (trust, evaluate);
check ties the two together for many targets at once.
"""
