/* `iothub-device key status|migrate`: what protects the private keys of a state directory,
 * and the encryption in place of plaintext ones (keystore.h). */
#ifndef HUB_AGENT_KEYCMD_H
#define HUB_AGENT_KEYCMD_H

/* The key command (argv[0] = "key"). Returns the process exit status (0, 1, 2 usage). */
int hub_keycmd_main(int argc, char **argv);

#endif
