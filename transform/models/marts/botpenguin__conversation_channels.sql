select conversation_id, bot_id, channel, is_primary, channel_position
from {{ ref('int_botpenguin__conversation_channels') }}
