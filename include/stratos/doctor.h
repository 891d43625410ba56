/* stratosd doctor: a preflight of region, credentials, endpoint and EC2 permissions. */
#ifndef STRATOS_DOCTOR_H
#define STRATOS_DOCTOR_H

struct config;

/*
 * Runs every check and prints a table (CHECK, RESULT, DETAIL) on stdout:
 * region, credential source and identity (STS GetCallerIdentity), EC2
 * endpoint reachability, and for each EC2 action Stratos needs whether it
 * is permitted (DryRun=true: DryRunOperation = allowed,
 * UnauthorizedOperation = denied). With --pools-file, RunInstances is
 * dry-run with the first AWSNodeClass's image, type, subnet and groups.
 * With --cluster-name, an instance of the cluster (if any) is the target
 * of the Start/Stop/Terminate/CreateTags dry runs. Returns the exit
 * status: 0 when everything required passed, 1 otherwise. Not thread-safe
 * (run once from main).
 */
int doctor_run(const struct config *cfg);

#endif
