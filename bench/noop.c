/* The exec storm's target: does nothing. Linked statically (when possible) so the storm
 * measures fork, exec and exit rather than the dynamic loader. */
int main(void)
{
    return 0;
}
