/* A shared object that is not a plugin: no imcore_plugin_init. */
__attribute__((visibility("default"))) int something_else(void);

int something_else(void)
{
    return 42;
}
