<?php

namespace App\Jobs;

use Illuminate\Contracts\Queue\ShouldBeEncrypted;

/** Work whose payload carries its command encrypted (`data.command` is ciphertext). */
class SecretWork extends Work implements ShouldBeEncrypted
{
}
