/* `stratosd validate FILE...`: the validating webhooks' rules, offline, on manifest files (CI). */
#ifndef STRATOS_VALIDATE_CMD_H
#define STRATOS_VALIDATE_CMD_H

/*
 * argv: the arguments after "validate" ("-" reads standard input). Prints
 * "FILE: doc N (Kind/name): spec.path: problem" per violation and
 * "...: warning: ..." per warning on stdout, a summary on stderr. Documents
 * of other kinds are skipped; NodePools are checked against the
 * AWSNodeClasses found in all the files given (when there are any).
 * Returns the exit status: 0 valid, 1 any violation (or YAML syntax error),
 * 2 a file could not be read or bad usage.
 */
int validate_cmd_main(int argc, char **argv);

#endif
