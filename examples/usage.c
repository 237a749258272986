#include <ctxvar.h>
#include <stdio.h>

static cv_var *request_id;

static int handle(void *arg)                 /* runs inside a copied context */
{
    cv_var_set(request_id, arg, NULL);       /* stays in this context */
    printf("handling %s\n", (char *)cv_var_get_or(request_id, "?"));
    return 0;
}

int main(void)
{
    cv_var_new_default("request_id", "none", &request_id);
    cv_context *ctx;
    cv_copy_context(&ctx);                   /* O(1) snapshot of the current one */
    cv_context_run(ctx, handle, "req-42");   /* prints "handling req-42" */
    void *v;
    cv_var_get(request_id, &v);              /* still "none" out here */
    printf("outside: %s\n", (char *)v);
    cv_token *tok;
    cv_var_set(request_id, "main", &tok);    /* set ... */
    cv_var_reset(request_id, tok);           /* ... and put back */
    cv_token_release(tok);
    cv_context_release(ctx);
    cv_var_release(request_id);
    cv_thread_cleanup();                     /* nothing left reachable */
    return 0;
}
