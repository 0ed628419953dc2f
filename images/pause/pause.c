/*
 * shipmate pause: the process that holds a pod sandbox's namespaces.
 *
 * Sleeps until SIGTERM or SIGINT (then exits 0) and, being PID 1 of the
 * sandbox's PID namespace when the namespace is shared, reaps every child
 * that is re-parented to it so no zombie outlives its container.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

static void exit_on_signal(int signo)
{
	(void)signo;
	_exit(0);
}

static void reap_children(int signo)
{
	int saved_errno = errno;
	(void)signo;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	errno = saved_errno;
}

static void install(int signo, void (*handler)(int))
{
	struct sigaction action;

	memset(&action, 0, sizeof(action));
	action.sa_handler = handler;
	action.sa_flags = SA_RESTART | (signo == SIGCHLD ? SA_NOCLDSTOP : 0);
	sigemptyset(&action.sa_mask);
	if (sigaction(signo, &action, NULL) < 0) {
		perror("pause: sigaction");
		exit(1);
	}
}

int main(int argc, char **argv)
{
	if (argc > 1 && (strcmp(argv[1], "-v") == 0 || strcmp(argv[1], "--version") == 0)) {
		puts("shipmate-pause 1.0");
		return 0;
	}
	if (getpid() != 1)
		fprintf(stderr, "pause: warning: not running as PID 1\n");

	install(SIGTERM, exit_on_signal);
	install(SIGINT, exit_on_signal);
	install(SIGCHLD, reap_children);

	for (;;)
		pause();
	return 1;
}
